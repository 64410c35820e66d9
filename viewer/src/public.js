// The public map (/): residents' layers only. Every request it makes is
// anonymous (credentials: 'omit'), so even a staff member who is logged in
// in another tab sees exactly what residents see, and no staff code is loaded.
import { createMap } from './common.js';

createMap({ styleName: 'public', credentials: 'omit' });
