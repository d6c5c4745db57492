/* The artifact of the example: any program will do. */
#include <stdio.h>

int main(void)
{
    puts("hello, signed world");
    return 0;
}
