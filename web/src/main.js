// Entry point: starts the editor once the page has loaded. The app object is kept on
// window.kiln for the browser console and the end-to-end tests.
import '@comfyorg/litegraph/style.css';
import './style.css';

import { App } from './app.js';

const app = new App();
window.kiln = app;
app.start().catch((e) => {
    document.body.dataset.error = String(e?.stack ?? e);
    console.error(e);
});
