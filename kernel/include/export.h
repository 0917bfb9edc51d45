#ifndef EXPORT_H
#define EXPORT_H
#include "types.h"

/* export.c: --export=PATH's trees to the host at the app's end. */
bool export_add(const char *path);  /* false: too many, or not an absolute path */
unsigned export_count(void);
void export_all(void);              /* at process_exit, the other CPUs stopped */
#endif
