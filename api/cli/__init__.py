"""The `dino` command line: HTTP client of the job API, live views, `dino serve`."""
