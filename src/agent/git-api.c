/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder while being written. */
#include "agent/agent.h"

const struct dt_route dt_git_routes[] = {
    {},
};
