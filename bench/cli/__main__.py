"""`python -m bench.cli ...` (as `accelerate launch` and `torchrun` start it) is `bench ...`."""

from bench.cli import main

main()
