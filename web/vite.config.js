// Build: plain Vite, output in dist/ (which `kiln serve` prefers over web/ when present).
// During development `npm run dev` proxies the API and the WebSocket to a running
// `kiln serve` (KILN_URL, default http://127.0.0.1:8188).
import { defineConfig } from 'vite';

const target = process.env.KILN_URL ?? 'http://127.0.0.1:8188';

export default defineConfig({
    base: './',
    build: {
        outDir: 'dist',
        emptyOutDir: true,
        chunkSizeWarningLimit: 2000,
        rollupOptions: {
            onwarn(warning, warn) {
                // LiteGraph evaluates arithmetic typed into number prompts; that is known.
                if (warning.code === 'EVAL') return;
                warn(warning);
            },
        },
    },
    server: {
        proxy: {
            '/api': { target, changeOrigin: false },
            '/ws': { target, ws: true },
        },
    },
});
