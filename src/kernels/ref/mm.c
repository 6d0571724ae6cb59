/* mm.c: the reference matrix products, one vec_dot per (row, token): the
 * definition every tiled mm is tested against, bit for bit. */
#include "ref.h"

CAI__MM_LOOP(cai__ref_f32_mm, cai__ref_f32_vec_dot)
CAI__MM_LOOP(cai__ref_f16_mm, cai__ref_f16_vec_dot)
CAI__MM_LOOP(cai__ref_bf16_mm, cai__ref_bf16_vec_dot)
CAI__MM_LOOP(cai__ref_q4_0_mm, cai__ref_q4_0_vec_dot)
CAI__MM_LOOP(cai__ref_q4_1_mm, cai__ref_q4_1_vec_dot)
CAI__MM_LOOP(cai__ref_q5_0_mm, cai__ref_q5_0_vec_dot)
CAI__MM_LOOP(cai__ref_q5_1_mm, cai__ref_q5_1_vec_dot)
CAI__MM_LOOP(cai__ref_q8_0_mm, cai__ref_q8_0_vec_dot)
CAI__MM_LOOP(cai__ref_q8_1_mm, cai__ref_q8_1_vec_dot)
CAI__MM_LOOP(cai__ref_q4_k_mm, cai__ref_q4_k_vec_dot)
CAI__MM_LOOP(cai__ref_q5_k_mm, cai__ref_q5_k_vec_dot)
CAI__MM_LOOP(cai__ref_q6_k_mm, cai__ref_q6_k_vec_dot)
CAI__MM_LOOP(cai__ref_q8_k_mm, cai__ref_q8_k_vec_dot)
