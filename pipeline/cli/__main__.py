"""``python -m pipeline.cli ...`` = ``emotionpipe ...`` (how ``emotionpipe up --detach`` starts the stack)."""

from pipeline.cli import main

main()
