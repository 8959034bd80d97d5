"""The suite's own machinery: processes forked from the zygote, ports of private servers."""
