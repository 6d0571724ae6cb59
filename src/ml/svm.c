/* svm.c: SupportVectorRegressor (301) and SupportVectorClassifier (401). */
#include "ml.h"

int cml__load_svm(struct cml__build *b, const struct cml__mm_model *mm)
{
    return cai__fail(b->err, CAI_EUNSUPPORTED, "%s: not supported yet",
                     cml__mm_type_name(mm->type_field));
}
