"""pilotfish.xds"""
