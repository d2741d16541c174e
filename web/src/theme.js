// Colours: ComfyUI's dark palette for sockets and links by data type, and the canvas
// defaults that go with it, so graphs look as they do in ComfyUI's editor.
import { LGraphCanvas, LiteGraph } from '@comfyorg/litegraph';

/** Socket and link colour per data type (ComfyUI's "dark" palette, node_slot). */
export const TYPE_COLORS = {
    CLIP: '#FFD500',
    CLIP_VISION: '#A8DADC',
    CLIP_VISION_OUTPUT: '#ad7452',
    CONDITIONING: '#FFA931',
    CONTROL_NET: '#6EE7B7',
    IMAGE: '#64B5F6',
    LATENT: '#FF9CF9',
    MASK: '#81C784',
    MODEL: '#B39DDB',
    STYLE_MODEL: '#C2FFAE',
    VAE: '#FF6E6E',
    TAESD: '#DCC274',
};

/** Applies the palette to LiteGraph's globals and to one canvas. */
export function applyTheme(canvas) {
    Object.assign(LiteGraph, {
        NODE_TITLE_COLOR: '#999',
        NODE_SELECTED_TITLE_COLOR: '#FFF',
        NODE_TEXT_SIZE: 14,
        NODE_TEXT_COLOR: '#AAA',
        NODE_SUBTEXT_SIZE: 12,
        NODE_DEFAULT_COLOR: '#333',
        NODE_DEFAULT_BGCOLOR: '#353535',
        NODE_DEFAULT_BOXCOLOR: '#666',
        NODE_BOX_OUTLINE_COLOR: '#FFF',
        DEFAULT_SHADOW_COLOR: 'rgba(0,0,0,0.5)',
        WIDGET_BGCOLOR: '#222',
        WIDGET_OUTLINE_COLOR: '#666',
        WIDGET_TEXT_COLOR: '#DDD',
        WIDGET_SECONDARY_TEXT_COLOR: '#999',
        LINK_COLOR: '#9A9',
        EVENT_LINK_COLOR: '#A86',
        CONNECTING_LINK_COLOR: '#AFA',
    });
    Object.assign(LGraphCanvas.link_type_colors, TYPE_COLORS);
    canvas.default_connection_color_byType = { ...TYPE_COLORS };
    canvas.clear_background_color = '#222';
}
