// Not part of the build. Build and run: g++ -O3 -mavx2 -mfma native/bench/prefill_candidates.cpp -o /tmp/pc && /tmp/pc
// (one thread, CPU time; quiet machine). Figures and the decision are in README.md, "Prefill kernels".
// Candidate prefill kernels for ternary weights on AVX2, one thread, CPU time: the MAD outer product (shipped), an
// exact lookup-table kernel (TL-style: 2 trits -> 9-entry int16 table split in lo/hi bytes, pshufb), a lossy one
// (T-MAC-style int8 table: activations limited to [-63, 63] so a pair's sum fits int8), and lut_mm-style scalar
// 5-trit tables (243 entries per 5 columns). Same work: R rows x K columns x NT tokens.
#include <immintrin.h>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <vector>
#include <random>
#include "cpu_clock.h"
constexpr int K = 2048, ROWS = 256, NT = 6;
int main(){
  std::mt19937 rng(1); std::uniform_int_distribution<int> wd(-1,1), xd(-127,127), xs(-63,63);
  std::vector<int8_t> W(ROWS*K); for (auto& v: W) v = wd(rng);
  std::vector<int8_t> X(NT*K); for (auto& v: X) v = xd(rng);
  std::vector<int8_t> Xs(NT*K); for (auto& v: Xs) v = xs(rng);
  std::vector<int64_t> ref(NT*ROWS);
  for (int t=0;t<NT;t++) for (int r=0;r<ROWS;r++){ int64_t s=0; for(int k=0;k<K;k++) s+=W[r*K+k]*X[t*K+k]; ref[t*ROWS+r]=s; }
  const double macs = double(ROWS)*K*NT;
  // --- MAD outer product: panel [K/4][16 rows][4] codes, 2x6 block (as kernels_simd.inl)
  { std::vector<uint8_t> P(ROWS*K);
    for (int g=0; g<ROWS/16; g++) for (int q=0;q<K/4;q++) for (int i=0;i<16;i++) for(int kk=0;kk<4;kk++) P[(g*(K/4)+q)*64+i*4+kk]=W[(g*16+i)*K+4*q+kk]+1;
    int reps=200; double t0=cpu_now(); volatile int32_t sink=0;
    for (int rep=0;rep<reps;rep++) for (int g=0; g<ROWS/16; g++){
      __m256i acc[2][NT]; for(int v=0;v<2;v++) for(int j=0;j<NT;j++) acc[v][j]=_mm256_setzero_si256();
      __m256i tot[2][NT]; for(int v=0;v<2;v++) for(int j=0;j<NT;j++) tot[v][j]=_mm256_setzero_si256();
      const uint8_t* c=&P[g*(K/4)*64];
      for (int s0=0;s0<K/4;s0+=32){
        for (int s=s0;s<s0+32;s++){ __m256i w0=_mm256_loadu_si256((const __m256i*)(c+s*64)), w1=_mm256_loadu_si256((const __m256i*)(c+s*64+32));
          _Pragma("GCC unroll 8") for(int j=0;j<NT;j++){ int32_t xv; memcpy(&xv,&X[j*K+4*s],4); __m256i b=_mm256_set1_epi32(xv);
            acc[0][j]=_mm256_add_epi16(acc[0][j],_mm256_maddubs_epi16(w0,b)); acc[1][j]=_mm256_add_epi16(acc[1][j],_mm256_maddubs_epi16(w1,b)); } }
        for(int v=0;v<2;v++) for(int j=0;j<NT;j++){ tot[v][j]=_mm256_add_epi32(tot[v][j],_mm256_madd_epi16(acc[v][j],_mm256_set1_epi16(1))); acc[v][j]=_mm256_setzero_si256(); } }
      __m256i z=_mm256_setzero_si256(); for(int v=0;v<2;v++) for(int j=0;j<NT;j++) z=_mm256_add_epi32(z,tot[v][j]); sink += _mm256_extract_epi32(z,0)+_mm256_extract_epi32(z,5);
    }
    printf("MAD outer product (maddubs, 2x6):   %6.1f GMAC/s\n", reps*macs/(cpu_now()-t0)/1e9); }
  // --- exact LUT: per column pair, index 3*(w0+1)+(w1+1) per row (32 rows a vector); per token and pair a 9-entry
  // int16 table split into lo/hi bytes; pshufb x2, unpack into int16, add (int32 widening every 64 pairs).
  { std::vector<uint8_t> IDX(ROWS*K/2);  // [row tile of 32][pair][32 rows]
    for (int g=0; g<ROWS/32; g++) for(int p=0;p<K/2;p++) for(int i=0;i<32;i++){ int r=g*32+i; IDX[(g*(K/2)+p)*32+i]=3*(W[r*K+2*p]+1)+(W[r*K+2*p+1]+1); }
    std::vector<uint8_t> TL(NT*(K/2)*32);  // [token][pair][lo16 | hi16]
    int reps=100; double t0=cpu_now(); volatile int32_t sink=0; std::vector<int32_t> out(NT*ROWS);
    for (int rep=0;rep<reps;rep++){
      for (int j=0;j<NT;j++) for (int p=0;p<K/2;p++){ int x0=X[j*K+2*p], x1=X[j*K+2*p+1]; uint8_t* t=&TL[(j*(K/2)+p)*32];
        for (int i=0;i<16;i++){ int v = i<9 ? (i/3-1)*x0+(i%3-1)*x1 : 0; t[i]=uint8_t(v&255); t[16+i]=uint8_t((v>>8)&255);} }
      for (int g=0; g<ROWS/32; g++){
        __m256i acc[NT][2], tot[NT][4]; for(int j=0;j<NT;j++){acc[j][0]=acc[j][1]=_mm256_setzero_si256(); for(int q=0;q<4;q++) tot[j][q]=_mm256_setzero_si256();}
        for (int p0=0;p0<K/2;p0+=64){
          for (int p=p0;p<p0+64;p++){ __m256i idx=_mm256_loadu_si256((const __m256i*)&IDX[(g*(K/2)+p)*32]);
            for (int j=0;j<NT;j++){ const uint8_t* t=&TL[(j*(K/2)+p)*32];
              __m256i lo=_mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)t)),idx);
              __m256i hi=_mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(t+16))),idx);
              acc[j][0]=_mm256_add_epi16(acc[j][0],_mm256_unpacklo_epi8(lo,hi)); acc[j][1]=_mm256_add_epi16(acc[j][1],_mm256_unpackhi_epi8(lo,hi)); } }
          for(int j=0;j<NT;j++) for(int h=0;h<2;h++){ tot[j][2*h]=_mm256_add_epi32(tot[j][2*h],_mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[j][h]))); tot[j][2*h+1]=_mm256_add_epi32(tot[j][2*h+1],_mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[j][h],1))); acc[j][h]=_mm256_setzero_si256(); } }
        __m256i z=_mm256_setzero_si256(); for(int j=0;j<NT;j++) for(int q=0;q<4;q++) z=_mm256_add_epi32(z,tot[j][q]); sink += _mm256_extract_epi32(z,0)+_mm256_extract_epi32(z,7);
      } }
    printf("exact LUT (2 trits, int16 lo/hi):    %6.1f GMAC/s (tables built per call included)\n", reps*macs/(cpu_now()-t0)/1e9); }
  // --- lossy int8 LUT (T-MAC-like): activations in [-63, 63], one pshufb per 32 rows x 2 weights, int8 -> int16.
  { std::vector<uint8_t> IDX(ROWS*K/2);
    for (int g=0; g<ROWS/32; g++) for(int p=0;p<K/2;p++) for(int i=0;i<32;i++){ int r=g*32+i; IDX[(g*(K/2)+p)*32+i]=3*(W[r*K+2*p]+1)+(W[r*K+2*p+1]+1); }
    std::vector<int8_t> TL(NT*(K/2)*16);
    int reps=100; double t0=cpu_now(); volatile int32_t sink=0;
    for (int rep=0;rep<reps;rep++){
      for (int j=0;j<NT;j++) for (int p=0;p<K/2;p++){ int x0=Xs[j*K+2*p], x1=Xs[j*K+2*p+1]; int8_t* t=&TL[(j*(K/2)+p)*16];
        for (int i=0;i<16;i++) t[i] = i<9 ? int8_t((i/3-1)*x0+(i%3-1)*x1) : 0; }
      for (int g=0; g<ROWS/32; g++){
        __m256i acc[NT][2]; for(int j=0;j<NT;j++) acc[j][0]=acc[j][1]=_mm256_setzero_si256();
        for (int p=0;p<K/2;p++){ __m256i idx=_mm256_loadu_si256((const __m256i*)&IDX[(g*(K/2)+p)*32]);
          for (int j=0;j<NT;j++){ __m256i v=_mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)&TL[(j*(K/2)+p)*16])),idx);
            acc[j][0]=_mm256_add_epi16(acc[j][0],_mm256_cvtepi8_epi16(_mm256_castsi256_si128(v))); acc[j][1]=_mm256_add_epi16(acc[j][1],_mm256_cvtepi8_epi16(_mm256_extracti128_si256(v,1))); } }
        __m256i z=_mm256_setzero_si256(); for(int j=0;j<NT;j++) z=_mm256_add_epi16(z,_mm256_add_epi16(acc[j][0],acc[j][1])); sink += _mm256_extract_epi16(z,0)+_mm256_extract_epi16(z,15);
      } }
    printf("lossy int8 LUT (2 trits, |x|<=63):   %6.1f GMAC/s (int16 sums; overflow past K=512 ignored here)\n", reps*macs/(cpu_now()-t0)/1e9); }
  // --- lut_mm-style scalar 5-trit tables: per token and 5 columns a 243-entry int16 table; a row's byte indexes it.
  { std::vector<uint8_t> B(ROWS*(K/5+1));
    int K5=K/5; for(int r=0;r<ROWS;r++) for(int g=0;g<K5;g++){ int v=0; for(int d=0;d<5;d++) v=v*3+(W[r*K+5*g+d]+1); B[r*K5+g]=v; }
    std::vector<int16_t> T(NT*K5*243);
    int reps=20; double t0=cpu_now(); volatile int32_t sink=0;
    for (int rep=0;rep<reps;rep++){
      for(int j=0;j<NT;j++) for(int g=0;g<K5;g++){ int16_t* t=&T[(j*K5+g)*243]; for(int v=0;v<243;v++){ int s=0,u=v; for(int d=4;d>=0;d--){ s+=(u%3-1)*X[j*K+5*g+d]; u/=3;} t[v]=s; } }
      for(int r=0;r<ROWS;r++) for(int j=0;j<NT;j++){ int32_t s=0; const int16_t* t=&T[j*K5*243]; for(int g=0;g<K5;g++) s+=t[g*243+B[r*K5+g]]; sink+=s; } }
    printf("lut_mm-style scalar 5-trit tables:   %6.1f GMAC/s (tables built per call included)\n", reps*double(ROWS)*K5*5*NT/(cpu_now()-t0)/1e9); }
}
