"""The shell: the `ledger` command, the composition root that builds a process from `Settings`,
the demo and every benchmark. Nothing below it imports it."""
