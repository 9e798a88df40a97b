#include <time.h>
static inline double cpu_now(){ timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&ts); return ts.tv_sec+ts.tv_nsec*1e-9; }
