// gyre core: the unified batch/stream dataflow API. Include this one header.
#pragma once

#include "gyre/core/config.h"
#include "gyre/core/error.h"
#include "gyre/core/stream.h"
