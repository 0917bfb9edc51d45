/*
 * Exits with the status given as its argument (default 0), so tests can check
 * that every status 0..255 reaches the host unchanged.
 */
#include <stdlib.h>

int main(int argc, char **argv)
{
    exit(argc > 1 ? atoi(argv[1]) : 0);
}
