// gyre iterations: bulk, delta and streaming feedback loops. Include this one header.
#pragma once

#include "gyre/core.h"
#include "gyre/iterations/iterate.h"
