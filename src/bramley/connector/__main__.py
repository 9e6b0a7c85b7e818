"""`python -m bramley.connector …` is `bramley connect …` without the server's command line."""
from bramley.connector.cli import main

main()
