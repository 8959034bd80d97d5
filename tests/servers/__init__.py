"""Local servers speaking the providers' and a collector's wire formats, and fakes on them."""
