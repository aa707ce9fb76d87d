"""What a representation still gives away: fresh attribute attackers, speaker verification and membership inference."""
