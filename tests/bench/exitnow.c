/*
 * exitnow: a dynamically linked program that only exits 0. make bench starts
 * it many times, with and without each preload library, to weigh what the
 * library adds to a process start (its load and constructor).
 */
int
main(void)
{
	return 0;
}
