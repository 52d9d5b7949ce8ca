#include "app.h"
HM_MODULE(.handle = 0);
