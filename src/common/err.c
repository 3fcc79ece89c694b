/* Names for the CP_E* codes.
 * SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

const char *cp_strerror(int err)
{
    switch (err) {
    case CP_OK:
        return "success";
    case CP_ENOMEM:
        return "out of memory";
    case CP_EINVAL:
        return "invalid argument";
    case CP_ENOTFOUND:
        return "not found";
    case CP_ECONFLICT:
        return "conflict";
    case CP_EAGAIN:
        return "try again";
    case CP_EIO:
        return "input/output error";
    case CP_EPROTO:
        return "protocol error";
    case CP_EPERM:
        return "permission denied";
    case CP_ETIMEDOUT:
        return "timed out";
    case CP_EUNSUPPORTED:
        return "not supported";
    }
    return "unknown error";
}
