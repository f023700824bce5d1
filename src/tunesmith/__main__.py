"""`python -m tunesmith ...`: what `accelerate launch -m tunesmith run RECIPE` starts in each process."""

from tunesmith.cli import main

main()
