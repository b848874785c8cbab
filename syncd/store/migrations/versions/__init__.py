"""The migrations, one file per revision (named NNNN_slug.py)."""
