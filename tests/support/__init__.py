"""Test support code that is not part of the harness package: synthetic run folders
(``tests.support.synthetic``) and a small HTTP server with known behaviour
(``tests.support.testserver``), used by the tests and by benchmarks/."""
