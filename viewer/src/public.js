// The public map (/): residents' layers only. Every request it makes is
// anonymous (credentials: 'omit'), so even a staff member who is logged in
// in another tab sees exactly what residents see, and no staff code is loaded.
import { ARCHIVE, createMap, loadStaticStyle } from './common.js';

// On a static site (chizu publish-site) the style reads a PMTiles archive.
const style = ARCHIVE ? await loadStaticStyle('public') : undefined;
createMap({ styleName: 'public', credentials: 'omit', style });
