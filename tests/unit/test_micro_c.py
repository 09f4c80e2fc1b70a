"""The spelling fixes applied to TVM-generated kernel C (no toolchain needed)."""

from edgecc.compiler.micro.kernels import portable_c


def test_non_finite_constants_are_spelled_with_math_h_macros():
    src = ("condval = nanf; y = (v > -inff) ? v : -inff; h = (half)inff; d = inf + -nan;\n"
           "float info = x.inf; r = nanf(\"\"); s = \"inff nan\";")
    out = portable_c(src)
    assert "condval = ((float)NAN);" in out
    assert "y = (v > -((float)INFINITY)) ? v : -((float)INFINITY);" in out
    assert "h = (half)((float)INFINITY);" in out
    assert "d = ((double)INFINITY) + -((double)NAN);" in out
    # identifiers that merely contain the words, members, calls and string literals are left alone
    assert 'float info = x.inf; r = nanf(""); s = "inff nan";' in out


def test_c_without_non_finite_constants_is_unchanged():
    src = "for (int i = 0; i < 4; ++i) { out[i] = fmaxf(in[i], 0.0f); } /* infer, nano */"
    assert portable_c(src) == src
