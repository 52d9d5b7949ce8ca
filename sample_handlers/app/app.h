#include <hotmod_http.h>
