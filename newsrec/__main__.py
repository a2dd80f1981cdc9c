"""`python -m newsrec` = `newsrec`."""
from newsrec.cli import main

main()
