/* Reference runs for test_sd_sampling.c: ComfyUI's k-diffusion sampler expressions
 * (comfy/k_diffusion/sampling.py, eps model, eta 1, s_noise 1) run with torch 2.11 on x86
 * (AVX-512, float32 CPU tensors; lms through scipy 1.18's quad with NumPy 2.5) on a synthetic
 * denoiser denoised = x * 0.5 + 0.1, 8 karras steps of the SD1 table, an initial state of
 * torch.randn(8) * 14 and the noise draws below (torch.manual_seed(0), in order), handed to
 * the samplers in place of default_noise_sampler / the BrownianTree. Values are C hex floats
 * so that they carry every bit. */
#ifndef KILN_TEST_SD_SAMPLING_REF_H
#define KILN_TEST_SD_SAMPLING_REF_H

static const float ref_sigmas[9] = {
    0x1.d3ab28p+3f, 0x1.f9c9acp+2f, 0x1.01c678p+2f, 0x1.e90d1cp+0f,
    0x1.a86164p-1f, 0x1.48d396p-2f, 0x1.b715b8p-4f, 0x1.dde002p-6f,
    0.0f,
};
static const float ref_x0[8] = {
    0x1.592eep+4f, -0x1.06e98cp+2f, -0x1.e80c8p+4f, 0x1.fd507cp+2f,
    -0x1.e5ddb4p+3f, -0x1.39490ep+4f, 0x1.696616p+2f, 0x1.776f9p+3f,
};
static const float ref_noise[16][8] = {
    {
        -0x1.704288p-1f, -0x1.9d0616p-2f, -0x1.317a3p-1f, 0x1.74cf8cp-3f,
        -0x1.b69e0ep-1f, 0x1.19c132p+0f, -0x1.123956p+0f, 0x1.f69594p-4f,
    },
    {
        -0x1.21f45ep-1f, 0x1.7e11c4p-2f, -0x1.c8b39cp-1f, -0x1.8254e2p+0f,
        0x1.7b4872p-2f, 0x1.74dd5ap+0f, 0x1.e12ec4p-1f, 0x1.8cb8fcp-1f,
    },
    {
        0x1.88f2d6p-3f, 0x1.43880ep+0f, -0x1.4a59f4p+0f, -0x1.950b6ap-1f,
        -0x1.5616dcp-6f, -0x1.6fdc9ep-1f, 0x1.098ac2p-1f, -0x1.50017p+0f,
    },
    {
        0x1.8934b6p-3f, 0x1.15e62p-1f, -0x1.1c00f6p+1f, 0x1.09333ep-2f,
        -0x1.079a9p+0f, -0x1.006368p-1f, 0x1.17edb6p-2f, -0x1.d61134p-1f,
    },
    {
        -0x1.4b212ap-5f, 0x1.270818p-2f, -0x1.edf70cp-8f, -0x1.d438cp-1f,
        -0x1.16ad6cp+0f, -0x1.10feap-2f, 0x1.83f072p-3f, -0x1.c08f08p-3f,
    },
    {
        0x1.075f26p+1f, -0x1.222d12p-5f, 0x1.00e576p-4f, -0x1.88594cp-1f,
        0x1.19687cp+0f, 0x1.60d64p+1f, 0x1.66faf2p-3f, -0x1.dcf056p-1f,
    },
    {
        -0x1.8167c6p+0f, -0x1.526c4ep-1f, 0x1.52bd58p+0f, 0x1.300a56p-5f,
        -0x1.23bf44p-2f, -0x1.1149e8p-3f, 0x1.e495c8p+0f, 0x1.8e36b2p+1f,
    },
    {
        -0x1.d565b6p-2f, -0x1.580d42p-2f, -0x1.91ea9cp+0f, 0x1.3b439cp+0f,
        0x1.650696p+0f, 0x1.2bcd5ep+0f, 0x1.bbea8ep-2f, -0x1.bbf7d2p+0f,
    },
    {
        -0x1.560748p+0f, 0x1.c63174p-1f, 0x1.8931b8p-1f, 0x1.d3dea4p-5f,
        0x1.caaab2p-3f, 0x1.1a9b1p-1f, -0x1.285836p-1f, 0x1.225bf2p-6f,
    },
    {
        0x1.0dfafap-3f, 0x1.050f7p+0f, -0x1.c99022p-2f, 0x1.cedefap-2f,
        -0x1.f3ac5ep-1f, 0x1.6c2748p-1f, -0x1.843642p-1f, -0x1.4983b8p-1f,
    },
    {
        -0x1.4ad47cp-1f, -0x1.45d25ap-3f, -0x1.c7568p+0f, 0x1.b1ff58p-1f,
        0x1.f7b0ep-3f, -0x1.0ca1bep-3f, -0x1.6d9ae2p-3f, -0x1.3118e6p-1f,
    },
    {
        0x1.18715p-2f, 0x1.22c73cp-1f, -0x1.58a0e2p-1f, -0x1.35a3eap+0f,
        0x1.5814fep+0f, 0x1.310d56p+1f, -0x1.22078ep-1f, -0x1.27536ep+0f,
    },
    {
        -0x1.404b66p+1f, 0x1.c0491cp-1f, -0x1.56169cp+1f, -0x1.00ad3ap-5f,
        0x1.fec1ccp-2f, -0x1.0bf106p-1f, -0x1.0183d8p-2f, -0x1.0e3756p+0f,
    },
    {
        -0x1.1e577ep-1f, -0x1.ea5392p-4f, -0x1.4ef11p-3f, -0x1.00797p-2f,
        -0x1.1695e2p+0f, 0x1.20d552p-8f, 0x1.dcc06ap-3f, -0x1.a3e99ap-1f,
    },
    {
        -0x1.5ba86cp-1f, 0x1.6cd244p+0f, 0x1.f6f9cap+0f, 0x1.89224cp-1f,
        0x1.fd6ab2p+0f, 0x1.6fbec4p-1f, -0x1.fc9626p-2f, 0x1.4f5e0ep+0f,
    },
    {
        0x1.950cdcp-2f, 0x1.6e81f6p-4f, -0x1.587efap-3f, -0x1.e41ae2p-2f,
        -0x1.f877bp+0f, 0x1.41943cp-1f, -0x1.cf784p-4f, 0x1.da39e6p-2f,
    },
};
static const struct {
    const char *name;
    float x[8];
} ref_runs[] = {
    {"euler",
     {
         0x1.2a9c32p+0f, 0x1.555f8p-8f, -0x1.303292p+0f, 0x1.1a00e4p-1f,
         -0x1.fb779p-2f, -0x1.6386fap-1f, 0x1.c8ff1p-2f, 0x1.7161b2p-1f,
     }},
    {"euler_ancestral",
     {
         0x1.83111p-2f, 0x1.1d3262p-2f, -0x1.31f94p-1f, 0x1.82b8c4p-5f,
         -0x1.427cd8p-3f, 0x1.bd8f9cp-3f, 0x1.54843ap-2f, 0x1.229afep-2f,
     }},
    {"heun",
     {
         0x1.cd801ap-2f, 0x1.321f3cp-3f, -0x1.47e2a4p-3f, 0x1.29f94ap-2f,
         0x1.40c04p-6f, -0x1.0616ep-5f, 0x1.0e377p-2f, 0x1.574da8p-2f,
     }},
    {"dpm_2",
     {
         0x1.231d12p-1f, 0x1.0174c2p-3f, -0x1.515cf8p-2f, 0x1.55cb2ap-2f,
         -0x1.0b5f18p-4f, -0x1.20f934p-3f, 0x1.2cfb6cp-2f, 0x1.987118p-2f,
     }},
    {"dpm_2_ancestral",
     {
         0x1.5c28dcp-3f, 0x1.83dae8p-3f, 0x1.c7faa8p-3f, 0x1.a52f8p-3f,
         0x1.8e4708p-3f, 0x1.7f9fb4p-3f, 0x1.cc7df4p-3f, 0x1.fd162cp-3f,
     }},
    {"lms",
     {
         0x1.d1ce34p-1f, 0x1.d27764p-5f, -0x1.a39f1ep-1f, 0x1.d49bcap-2f,
         -0x1.3e4d6ep-2f, -0x1.d3d232p-2f, 0x1.86049p-2f, 0x1.2a79f6p-1f,
     }},
    {"dpmpp_2s_ancestral",
     {
         0x1.f058b4p-3f, 0x1.db4f58p-3f, 0x1.4d19cp-7f, 0x1.104bcp-3f,
         0x1.cf1404p-4f, 0x1.e331bcp-3f, 0x1.0df818p-2f, 0x1.bd5afp-3f,
     }},
    {"dpmpp_sde",
     {
         0x1.a95028p-3f, 0x1.0ce5e8p-2f, -0x1.323a36p-4f, 0x1.5a55aap-3f,
         0x1.70b44cp-3f, 0x1.5dbe2ap-2f, 0x1.fcf99p-3f, 0x1.d24c9ap-4f,
     }},
    {"dpmpp_2m",
     {
         0x1.239e12p-1f, 0x1.010ccap-3f, -0x1.52cf86p-2f, 0x1.5628cap-2f,
         -0x1.0e45bap-4f, -0x1.22d6a4p-3f, 0x1.2d3d26p-2f, 0x1.98fc4ap-2f,
     }},
    {"dpmpp_2m_sde",
     {
         0x1.05d77ep-2f, 0x1.01bd5p-2f, 0x1.776306p-2f, 0x1.455bp-3f,
         0x1.038798p-2f, 0x1.afc54p-3f, 0x1.0cfp-2f, 0x1.057cc4p-4f,
     }},
    {"dpmpp_2m_sde_heun",
     {
         0x1.495c2ap-2f, 0x1.9c959ep-3f, 0x1.65cc04p-1f, 0x1.2670eep-2f,
         0x1.745c94p-2f, 0x1.1b366p-4f, 0x1.f34a2cp-3f, 0x1.e93e3p-7f,
     }},
    {"dpmpp_3m_sde",
     {
         0x1.f38e1cp-4f, -0x1.a911e2p-2f, 0x1.5131a8p-3f, 0x1.a42eaap-2f,
         -0x1.ef7184p-3f, 0x1.da448p-1f, -0x1.5ad6d2p-2f, 0x1.a8baf4p-1f,
     }},
    {"ddpm",
     {
         0x1.8311fep-2f, 0x1.1d32cap-2f, -0x1.31fb34p-1f, 0x1.82b2e4p-5f,
         -0x1.428034p-3f, 0x1.bd8fdcp-3f, 0x1.5484cp-2f, 0x1.229b32p-2f,
     }},
    {"lcm",
     {
         0x1.069002p-2f, 0x1.25297ap-2f, -0x1.7943d8p-3f, 0x1.cb367cp-5f,
         0x1.31f00cp-5f, 0x1.1956p-2f, 0x1.327fb2p-2f, 0x1.7f2664p-3f,
     }},
};

#endif
