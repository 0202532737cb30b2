/* openapi.h — docs/api/openapi.yaml, embedded at build time (controller/embed.py). */
#pragma once

#include <stddef.h>

extern const char openapi_yaml[];
extern const size_t openapi_yaml_len;
