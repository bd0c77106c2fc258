"""The test suite, a package so fixtures can be shared as tests.standins.fixtures."""
