"""`python -m privemo.distributed`: the reproduce command's search on keras-tuner's chief/worker engine.

The chief and worker logic is ``privemo.experiment.distributed``; this module is its command line (the reproduce
command's flags plus the distributed ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from privemo._util.quiet import quiet_tensorflow
from privemo.cli._interrupt import Interrupt, command_line


def build_parser() -> argparse.ArgumentParser:
    from privemo.cli.reproduce import build_parser as reproduce_parser
    from privemo.experiment.distributed import (BASE_PORT, CHIEF_TIMEOUT_S, DEFAULT_HOST, ENV_ORACLE_IP,
                                                ENV_ORACLE_PORT, ENV_TUNER_ID, LINGER_S, PLAN_WAIT_S, TRIAL_TIMEOUT_S)

    p = reproduce_parser()
    p.prog = "python -m privemo.distributed"
    p.description = ("Distributed hyper-parameter search for `python -m privemo.reproduce` on keras-tuner's "
                     "chief/worker engine: one chief serves every tuner project's oracle over gRPC, workers train "
                     "the trials. Every process takes the reproduce command's flags (the same on every machine) "
                     "plus the ones below.")
    env_id = os.environ.get(ENV_TUNER_ID)
    g = p.add_argument_group("distributed search")
    g.add_argument("--role", choices=["chief", "worker"],
                   default=None if env_id is None else ("chief" if "chief" in env_id else "worker"),
                   help=f"chief (serves the oracles) or worker (trains trials); default from ${ENV_TUNER_ID}")
    g.add_argument("--worker-id", default=None,
                   help=f"worker only: an integer N (tuner id 'tunerN') or a name; default from ${ENV_TUNER_ID}, "
                        "else 0")
    g.add_argument("--host", default=os.environ.get(ENV_ORACLE_IP, DEFAULT_HOST),
                   help="chief: address to listen on (0.0.0.0 for other machines); worker: the chief's address")
    g.add_argument("--port", type=int, default=int(os.environ.get(ENV_ORACLE_PORT, BASE_PORT)),
                   help="base port: project i of the job list is served on port + i")
    g.add_argument("--threads", type=int, default=None,
                   help="worker: TensorFlow threads (e.g. 1 when several workers share a machine's cores)")
    g.add_argument("--search-only", action="store_true",
                   help="chief: stop after the search (then run `python -m privemo.reproduce --resume` with the same "
                        "flags for the tables)")
    g.add_argument("--linger", type=float, default=LINGER_S,
                   help="chief: seconds to wait after the last trial for workers still walking through the projects")
    g.add_argument("--plan-wait", type=float, default=PLAN_WAIT_S,
                   help="worker: seconds to wait for a running chief")
    g.add_argument("--trial-timeout", type=float, default=TRIAL_TIMEOUT_S,
                   help="chief: a trial whose worker has not reported for this many seconds (workers report every "
                        "epoch) is handed to another worker, same trial and seed")
    g.add_argument("--chief-timeout", type=float, default=CHIEF_TIMEOUT_S,
                   help="worker: stop (one line) when the chief has not answered for this many seconds, between "
                        "trials or inside one (asked again after 1, 2, 4 .. 30 s: a chief restarted with --resume "
                        "is found again)")
    return p


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # TensorFlow's C++ start-up log off; privemo.experiment.distributed imports TensorFlow
    from privemo.cli.reproduce import UserError, config_from_args, run_command
    from privemo.experiment.distributed import ENV_TUNER_ID, run_chief, run_worker

    args = build_parser().parse_args(argv)

    def body() -> str:
        if args.role is None:
            raise UserError(f"--role chief|worker is required (or set ${ENV_TUNER_ID})")
        if not 1 <= args.port <= 65535:
            raise UserError(f"--port must be between 1 and 65535 (got {args.port})")
        for flag, value in (("--trial-timeout", args.trial_timeout), ("--chief-timeout", args.chief_timeout)):
            if not value > 0:
                raise UserError(f"{flag} must be a positive number of seconds (got {value})")
        if args.threads is not None and args.threads < 1:
            raise UserError(f"--threads must be a positive integer (got {args.threads})")
        config = config_from_args(args)
        if args.role == "chief":
            summary = run_chief(config, host=args.host, port=args.port, search_only=args.search_only,
                                linger_s=args.linger, trial_timeout_s=args.trial_timeout)
            text = summary.pop("reproduce", None)
            return "\n".join(filter(None, [json.dumps(summary, sort_keys=True), text]))
        worker_id = args.worker_id
        if worker_id is None:
            env_id = os.environ.get(ENV_TUNER_ID)
            worker_id = env_id if env_id and "chief" not in env_id else 0
        summary = run_worker(config, worker_id=worker_id, host=args.host, threads=args.threads,
                             plan_wait_s=args.plan_wait, chief_timeout_s=args.chief_timeout)
        return json.dumps(summary, sort_keys=True)

    words = sys.argv[1:] if argv is None else argv
    if args.role == "worker":  # keras-tuner hands a restarted worker (same --worker-id) its unfinished trial again
        how = f"start this worker again to continue: {command_line('privemo.distributed', words)}"
    else:
        how = f"restart the chief with --resume to continue: {command_line('privemo.distributed', words, '--resume')}"
    with Interrupt("privemo.distributed", how) as interrupt:  # Ctrl-C / SIGTERM: one line, then 130 / 143
        return interrupt.exit_status(run_command("privemo.distributed", body, how))


if __name__ == "__main__":
    sys.exit(main())
