"""The reference answers: the independent oracle (plain Python, pandas) and the watermark model."""
