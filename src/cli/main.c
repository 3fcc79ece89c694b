/* kontena: the command-line client for the Kontena master. Everything
 * lives in the kcli library; see cli.c for the command tables.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    int rc = cli_main(argc, argv);
    if (fflush(stdout) != 0 && rc == 0) {
        fputs("error: cannot write output\n", stderr);
        rc = 1;
    }
    return rc;
}
