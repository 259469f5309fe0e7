#!/usr/bin/env bats
# The architecture's rules, checked on the tree and the built objects:
# shared/ is sans I/O, and the two halves never include each other.

load helpers/common

@test "shared/ includes no socket, thread, allocation or stdio API" {
	run grep -nE '#[[:space:]]*include[[:space:]]*<(sys/socket|sys/epoll|pthread|stdlib|malloc|stdio|unistd|poll|sys/select|netdb|dlfcn)\.h>' "$ROOT"/shared/*.c "$ROOT"/shared/*.h
	echo "$output"
	[ "$status" -eq 1 ]
}

@test "shared/ objects call no socket, thread, allocation or I/O function" {
	objs=$(ls "$BUILD"/obj/shared/*.o)
	[ -n "$objs" ]
	run sh -c "nm -u $objs | awk '{print \$2}' | grep -E '^(socket|connect|accept|bind|listen|send|recv|read|write|close|poll|epoll_.*|select|malloc|calloc|realloc|free|pthread_.*|printf|fprintf|dprintf|puts|fopen|getaddrinfo|gethostbyname)(@.*)?$'"
	echo "$output"
	[ "$status" -eq 1 ]
}

@test "preload/ and server/ do not include each other" {
	run grep -nE '#[[:space:]]*include[[:space:]]*"(\.\./)?server/' "$ROOT"/preload/*.[ch]
	[ "$status" -eq 1 ]
	run grep -nE '#[[:space:]]*include[[:space:]]*"(\.\./)?preload/' "$ROOT"/server/*.[ch]
	[ "$status" -eq 1 ]
}

@test "the library exports only the libc symbols it interposes" {
	run sh -c "nm -D --defined-only '$LIB' | awk '{print \$3}' | grep -E '^s5_'"
	[ "$status" -eq 1 ]
	nm -D --defined-only "$LIB" | awk '{print $3}' | grep -qx connect
}
