/* The seed's native-example: the smallest real static executable. */
#include <stdio.h>

int main(void)
{
    printf("Hello from C code\n");
    return 0;
}
