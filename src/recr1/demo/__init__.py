"""The end-to-end CPU demo of Rec-R1 (``python -m recr1.demo``; ``bash scripts/demo.sh`` sets up and runs it)."""
