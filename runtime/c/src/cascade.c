/* The cascade policy's score (include/edgecc/cascade.h): softmax of the little model's logits, shifted by the
 * maximum so expf never overflows; only the two largest probabilities are needed. */
#include <math.h>

#include "edgecc/cascade.h"

float edgecc_cascade_score(const float* logits, int n, int policy) {
  int top = 0;
  for (int i = 1; i < n; i++)
    if (logits[i] > logits[top]) top = i;
  float sum = 0.0f, second = 0.0f; /* second: exp of the runner-up logit, shifted */
  for (int i = 0; i < n; i++) {
    float e = expf(logits[i] - logits[top]);
    sum += e;
    if (i != top && e > second) second = e;
  }
  /* the top-1 probability is exp(0) / sum */
  return policy == EDGECC_CASCADE_MAX_PROB ? 1.0f / sum : (1.0f - second) / sum;
}
