/* nn.c: NeuralNetwork (500), NeuralNetworkClassifier (403), Regressor (303). */
#include "ml.h"

int cml__load_nn(struct cml__build *b, const struct cml__mm_model *mm)
{
    return cai__fail(b->err, CAI_EUNSUPPORTED, "%s: not supported yet",
                     cml__mm_type_name(mm->type_field));
}
