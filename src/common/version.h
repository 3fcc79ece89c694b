/* The version we report. The agent protocol accepts peers with the same
 * major.minor (spec 4.2), so this stays on the 1.5 line Kontena 1.5 CLIs
 * and agents expect.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_VERSION_H
#define CP_VERSION_H

#define KONTENA_VERSION "1.5.90"

#endif
