#include <stdio.h>
#include "common.h"
int main(void) { log_info("zsseg"); return 0; }
