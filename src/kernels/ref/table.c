/* table.c: the "ref" kernel table, the plain C oracle every other table is
 * tested against. Types the kernels do not compute have all-NULL entries. */
#include "ref.h"

const struct cai_kernels cai__kernels_ref = CAI__REF_KERNELS_INIT("ref");
