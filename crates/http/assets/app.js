// returns dashboard
