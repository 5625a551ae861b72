"""What the tests and the benchmarks share: the Kubernetes API emulator (kmock taught
Hanshu's resources and server-side apply) and the operator run as in its image.

Its own folder, so bench/ never imports tests/ (a benchmark is not a test) and tests/
never imports bench/; neither is shipped in an image."""
