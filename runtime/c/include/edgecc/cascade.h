/* edgecc big/little cascade policy: the little model's confidence from its logits, compared with a threshold.
 *
 *   EDGECC_CASCADE_SCORE_MARGIN   softmax top-1 probability minus top-2
 *   EDGECC_CASCADE_MAX_PROB       softmax top-1 probability
 *
 * The little answer stands when the score is >= the threshold; otherwise the big model runs on the same input.
 * Costs ~n expf calls: next to nothing beside a convolution. edgecc.runtime.cascade computes the same in Python.
 */
#ifndef EDGECC_CASCADE_H_
#define EDGECC_CASCADE_H_

#ifdef __cplusplus
extern "C" {
#endif

#define EDGECC_CASCADE_SCORE_MARGIN 0
#define EDGECC_CASCADE_MAX_PROB 1

float edgecc_cascade_score(const float* logits, int n, int policy);

#ifdef __cplusplus
}
#endif
#endif /* EDGECC_CASCADE_H_ */
