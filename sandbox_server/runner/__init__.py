"""The in-sandbox runner: the one process that runs user code inside a sandbox container.

It speaks NDJSON over the container's attached stdin/stdout (see :mod:`.channel`), keeps one
Python namespace per context, and captures everything written to file descriptors 1 and 2.
Standard library only: it runs on the sandbox image's own Python, and is copied into the image
as the package ``selfbox_runner``.
"""
