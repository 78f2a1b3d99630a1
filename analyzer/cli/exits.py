"""Exit statuses, one set for every command (SPEC): what a script can rely on."""

EXIT_OK = 0
# the exchange failed (server error, timeout, refused, a check failed), or the machine's
# trouble rather than the input's (a full disk)
EXIT_FAILURE = 1
EXIT_INPUT = 2  # the input cannot be used: a one-line message says why
