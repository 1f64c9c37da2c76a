"""The link to Ray: ``runtime.RayLink`` (connect, submit, wait, cancel, restart) in the service's
process, and ``driver`` (the Ray driver itself, in a child process a lost cluster cannot end)."""
