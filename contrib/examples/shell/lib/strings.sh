# String helpers, sourced by scripts and tests.

upper() {
	printf '%s\n' "$1" | tr '[:lower:]' '[:upper:]'
}

# Leading and trailing blanks removed.
trim() {
	printf '%s\n' "$1" | sed -e 's/^[[:blank:]]*//' -e 's/[[:blank:]]*$//'
}
