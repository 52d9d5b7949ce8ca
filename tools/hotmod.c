/* hotmod - placeholder until the tool lands. */
#include <stdio.h>
int main(void) { fputs("hotmod: not yet\n", stderr); return 1; }
