from privemo.privacy.grids import ATTACKER_GRID, ATTACKER_GRIDS
from privemo.search.grids import GRIDS, PAPER_GRID, QUICK_GRID, grid_size


def test_paper_grid_is_the_papers():
    assert PAPER_GRID == {
        "conv_layers": (3, 4), "conv_width": (2, 3), "conv_kernels": (32, 64, 128), "gru_layers": (2, 3),
        "gru_width": (32,), "dense_layers": (1, 2), "dense_width": (32, 64), "grl_lambda": (0.3, 0.5, 0.75, 1.0),
    }
    assert ATTACKER_GRID == {"dense_layers": (2, 3, 4), "dense_width": (32, 64)}


def test_grid_sizes():
    assert grid_size(PAPER_GRID, adversary=True) == 384
    assert grid_size(PAPER_GRID, adversary=False) == 96
    assert grid_size(QUICK_GRID, adversary=True) == 4  # lambda is tuned over the paper's four values
    assert grid_size(QUICK_GRID, adversary=False) == 1


def test_quick_grids_are_subsets_of_the_papers():
    for key, values in QUICK_GRID.items():
        assert set(values) <= set(PAPER_GRID[key]), key
    for key, values in ATTACKER_GRIDS["quick"].items():
        assert set(values) <= set(ATTACKER_GRID[key]), key
    assert set(GRIDS) == set(ATTACKER_GRIDS)
