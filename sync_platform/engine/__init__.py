"""The six steps of one sync (fetch, map, validate, merge, verify, record); `ports` is what a
source hands in and a caller gets back."""
