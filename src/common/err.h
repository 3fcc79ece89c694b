/* The project-wide error vocabulary: 0 is success, a negative CP_E* code
 * is a failure. cp_strerror() names them.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_ERR_H
#define CP_ERR_H

enum cp_err {
    CP_OK = 0,
    CP_ENOMEM = -1,
    CP_EINVAL = -2,    /* bad input */
    CP_ENOTFOUND = -3, /* no such entity */
    CP_ECONFLICT = -4, /* uniqueness or compare-and-set failed */
    CP_EAGAIN = -5,    /* try again later (busy, lease held) */
    CP_EIO = -6,       /* storage or socket failure */
    CP_EPROTO = -7,    /* peer sent something we cannot accept */
    CP_EPERM = -8,     /* not allowed */
    CP_ETIMEDOUT = -9,
    CP_EUNSUPPORTED = -10,
};

/* Returns a static string naming err ("not found", ...). */
const char *cp_strerror(int err);

#endif
